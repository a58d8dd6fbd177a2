"""The response cache: exact and semantic (see README, Cache).

key (what makes two requests the same), entry (the stored answer), store / redis_store (where
it lives), recorder (capturing a miss's answer), replay (answering a hit in the client's
format), semantic + embed (similar questions), service (the decisions), internal (calls
Tollway makes to itself). The pipeline's door is `tollway.pipeline.cache`.
"""

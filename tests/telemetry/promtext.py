"""Reading Prometheus text exposition in tests (prometheus-client's own parser)."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.harness import MASTER_KEY, Tollway


def scrape(tw: Tollway, key: str | None = MASTER_KEY) -> tuple[int, str]:
    req = urllib.request.Request(tw.url + "/metrics", headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for n, ls, v in samples(text) if n == name and all(ls.get(k) == x for k, x in labels.items()))


def family_names(text: str) -> set[str]:
    """Every sample name a query could use, plus the family names (so empty families count)."""
    names = {n for n, _, _ in samples(text)}
    for fam in text_string_to_metric_families(text):
        names.add(fam.name)
        if fam.type == "counter":
            names.add(fam.name + "_total")
        if fam.type == "histogram":
            names.update(fam.name + s for s in ("_bucket", "_count", "_sum"))
    return names

"""deploy/grafana/tollway.json only queries metrics Tollway exposes (names taken from a live
/metrics), and its panels are well-formed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.harness import Tollway, openai_client
from tests.telemetry.promtext import family_names, scrape

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "tollway.json"
_NAME = re.compile(r"\btollway_[a-z_]+\b")


def queries(dash: dict) -> list[str]:
    out = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    out += [v["query"]["query"] for v in dash["templating"]["list"] if isinstance(v.get("query"), dict)]
    return out


def test_every_metric_the_dashboard_queries_exists(tollway: Tollway) -> None:
    openai_client(tollway).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    exposed = family_names(scrape(tollway)[1])
    dash = json.loads(DASHBOARD.read_text())
    used = {name for q in queries(dash) for name in _NAME.findall(q)}
    assert len(used) >= 20
    assert sorted(used - exposed) == []


def test_panels_are_well_formed() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["targets"] and all(t["expr"].count("(") == t["expr"].count(")") for t in p["targets"])
        assert {"x", "y", "w", "h"} <= set(p["gridPos"])

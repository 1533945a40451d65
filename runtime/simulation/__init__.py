"""Simulation runs: deterministic contact-center scenarios on the engine's virtual clock.

A scenario (YAML in ``scenarios/``, or a dict of the same shape) describes customers arriving
over a virtual day, the channels they use, what they ask the bot and the agents, and the agents
who answer them. :func:`run` drives it through ``Gateway.embedded`` and returns a
:class:`SimulationResult`: the summary (computed from the event logs), every conversation's
outcome and, if asked, the archive and the canonical event log::

    from runtime.simulation import run

    def test_the_bot_answers_most_customers(tmp_path):
        result = run("scenarios/whatsapp_campaign.yaml", duration="1h",
                     archive=tmp_path / "archive.sqlite3")
        conversations = result.summary["conversations"]
        assert conversations["without_agent"] > conversations["with_agent"]

The same scenario and seed give the same ``result.results`` and the same event log, byte for
byte (``result.event_log_sha256``), whatever the storage (``storage="memory"``, the default
without ``archive=``: no journal and the archive in memory; ``"files"``: both on disk, as a
running engine keeps them); only ``summary["performance"]`` depends on the machine and names
the storage.
``summary["kpis"]`` holds the planner's figures per queue and interval (with Erlang C and A
beside them where the scenario fits the model); :func:`run_sweep` runs one variant per value
of a key in parallel processes.
"""

from runtime.simulation.metrics import ConversationOutcome
from runtime.simulation.model import Scenario
from runtime.simulation.runner import SimulationResult, run
from runtime.simulation.scenario import ScenarioError, load_scenario
from runtime.simulation.sweep import SweepResult, run_sweep

__all__ = [
    "ConversationOutcome",
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "SweepResult",
    "load_scenario",
    "run",
    "run_sweep",
]

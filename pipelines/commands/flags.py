"""Flags that several commands share, declared once so they read and behave the same everywhere."""

from __future__ import annotations

TRACKING_URI_HELP = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI)"


def add_tracking_uri(parser, help: str = TRACKING_URI_HELP) -> None:
    parser.add_argument("--tracking-uri", metavar="URI", help=help)


def add_search_choice(parser) -> None:
    """``--experiment NAME`` and ``--search RUN_ID``: a search's parent run, the latest one by default."""
    parser.add_argument("--experiment", required=True, metavar="NAME", help="MLflow experiment of the search")
    parser.add_argument("--search", metavar="RUN_ID", help="parent run of the search (default: the latest one)")

"""``gantune promote``: register a search's best generator and move the alias only if it is better
(the policy is ``pipelines.registry.promote``)."""

from __future__ import annotations

from pipelines.commands.flags import add_search_choice, add_tracking_uri

DEFAULT_ALIAS = "champion"


def register(subparsers) -> None:
    parser = subparsers.add_parser("promote", help="register a search's best generator; move the alias if it is better")
    add_search_choice(parser)
    parser.add_argument("--metric", help="metric to compare on (default: the one the search optimised)")
    parser.add_argument("--model-name", metavar="NAME", help="registered model (default: gantune-<dataset>)")
    parser.add_argument("--alias", default=DEFAULT_ALIAS, help=f"alias to move (default {DEFAULT_ALIAS})")
    add_tracking_uri(parser)
    parser.add_argument("--force", action="store_true", help="register even a generator below the preset's floor")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pipelines.registry.promote import promote
    from pipelines.tracking.lookup import tracking_client

    print(promote(tracking_client(args.tracking_uri), args.experiment, args.search, args.metric, args.model_name,
                  args.alias, args.force))
    return 0

"""``gantune generate``: samples from an exported or registered generator, as one picture.

An export folder is read with torch alone; a ``models:/`` URI is downloaded first. The picture
is written beside its destination and renamed into place, so a failure leaves no partial file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipelines.commands.flags import add_tracking_uri
from pipelines.output_folder import check_output_file
from trainables.atomic import write_atomically
from trainables.errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def register(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="write samples of a generator as an image")
    parser.add_argument("--model", required=True, metavar="DIR_OR_URI",
                        help="export folder (gantune export --out) or models:/NAME@ALIAS")
    parser.add_argument("--n", default="64", metavar="N", help="number of samples (default 64)")
    parser.add_argument("--labels", metavar="L,L,...", help="class labels, repeated to N (conditional generators)")
    parser.add_argument("--seed", default="0", metavar="S", help="noise seed (default 0)")
    parser.add_argument("--out", required=True, metavar="FILE", help="image to write (.png or .jpg)")
    add_tracking_uri(parser, "MLflow tracking URI for models:/ (default: $MLFLOW_TRACKING_URI)")
    parser.set_defaults(func=run)


def _count(flag: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UsageError(f"{flag} must be an integer >= {minimum}, got {text!r}")
    return value


def parse_labels(text: str | None, n: int, spec):
    """``0,1,2`` repeated to ``n`` labels; None lets a conditional generator cycle all classes."""
    import torch

    if text is None:
        return None
    if not spec.conditional:
        raise UsageError("--labels: this generator is unconditional; leave --labels out")
    try:
        given = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        given = []
    if not given or any(not 0 <= label < spec.num_classes for label in given):
        raise UsageError(f"--labels must be comma-separated integers in 0..{spec.num_classes - 1}, got {text!r}")
    return torch.tensor(given).repeat((n + len(given) - 1) // len(given))[:n]


def run(args) -> int:
    n = _count("--n", args.n, 1)
    seed = _count("--seed", args.seed, 0)
    out = Path(args.out)
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"--out {args.out!r} must end in {', '.join(IMAGE_SUFFIXES)}")
    check_output_file("--out", out)
    from pipelines.registry.model_source import load_generator
    from trainables.core.pictures import write_picture
    from trainables.data.datasets import DATASETS

    with tempfile.TemporaryDirectory(prefix="gantune-generate-") as scratch:
        generator = load_generator(args.model, args.tracking_uri, scratch)
        labels = parse_labels(args.labels, n, generator.spec)
        samples = generator.generate(n, labels, seed)
        dataset = DATASETS[generator.info["config"]["dataset"]]
        write_atomically(out, lambda temporary: write_picture(temporary, samples, dataset))
    print(f"wrote {n} samples of shape {tuple(samples.shape[1:])} to {out}")
    return 0

"""How good a generator's samples are: the metrics, which of them a search may optimise and in which
direction, and the evaluator network whose features the image metrics are taken in."""

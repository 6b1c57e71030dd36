"""The trainer core: the config and the axis specs it is composed from (loss, architecture, optimizer),
the training step, the report loop around it, and the checkpoint and sample pictures each report leaves."""

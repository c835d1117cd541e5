"""Bridges to training frameworks. Each module imports its framework when it is imported itself, so geoadapt's
core never needs them: ``from geoadapt.integrations.lightning import RegularizerCallback``."""

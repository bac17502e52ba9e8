"""Config files: validated YAML describing tiers, judge and budget."""

from ecocascade.config.loader import load_config, parse_config, parse_judge_spec
from ecocascade.config.schema import CascadeConfig, TierSpec

__all__ = ["CascadeConfig", "TierSpec", "load_config", "parse_config", "parse_judge_spec"]

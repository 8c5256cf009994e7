"""Experiment configs: the schema (schema.py), cross-field rules (rules.py), loading and messages (loading.py).

Importing this package must stay cheap: no TensorFlow.
"""

from gru_lab.config.loading import (
                                    EMBEDDED_DEFAULT,
                                    PRESETS,
                                    apply_overrides,
                                    config_from_raw,
                                    load_config,
                                    load_yaml,
                                    parse_override,
                                    resolve_paths,
                                    set_key,
                                    split_assignment,
                                    to_yaml,
                                    validate,
)
from gru_lab.config.schema import (
                                    DATA_SECTIONS,
                                    AddingData,
                                    ArithmeticData,
                                    ConvConfig,
                                    EarlyStoppingConfig,
                                    ExperimentConfig,
                                    ImdbData,
                                    ModelConfig,
                                    OutputConfig,
                                    SequencesData,
                                    SeriesData,
                                    SineData,
                                    SweepConfig,
                                    TextData,
                                    TrainConfig,
                                    TuneConfig,
)

__all__ = [
    "EMBEDDED_DEFAULT", "PRESETS", "apply_overrides", "config_from_raw", "load_config", "load_yaml", "parse_override",
    "resolve_paths", "set_key", "split_assignment", "to_yaml", "validate", "DATA_SECTIONS", "AddingData",
    "ArithmeticData",
    "ConvConfig", "EarlyStoppingConfig", "ExperimentConfig", "ImdbData", "ModelConfig", "OutputConfig", "SequencesData",
    "SeriesData", "SineData", "SweepConfig", "TextData", "TrainConfig", "TuneConfig",
]

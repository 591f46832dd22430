"""config/drive.yaml and the nodes' parameter schema (nodes/params.py) agree."""

import dataclasses

import pytest
import yaml

from automot_ros.nodes.params import ActionParams, LanguageParams, UnderstandingParams
from automot_ros.paths import config_dir

SCHEMAS = {"understanding_node": UnderstandingParams, "action_node": ActionParams, "language_node": LanguageParams}


@pytest.mark.parametrize("node", sorted(SCHEMAS))
def test_drive_yaml_sets_exactly_the_declared_parameters_with_their_defaults(node):
    params = yaml.safe_load((config_dir() / "drive.yaml").read_text())[node]["ros__parameters"]
    schema = SCHEMAS[node]
    assert set(params) == {f.name for f in dataclasses.fields(schema)}
    assert params == dataclasses.asdict(schema()), "drive.yaml and the dataclass defaults differ"
    schema(**params).validate()


@pytest.mark.parametrize(
    "schema, override, problem",
    [
        (UnderstandingParams, {"slots": 1}, "slots"),
        (ActionParams, {"backend": "magic"}, "backend"),
        (ActionParams, {"cameras": ["front", "front"]}, "cameras"),
        (ActionParams, {"camera_frame_ids": []}, "camera_frame_ids"),
        (LanguageParams, {"device": "tpu"}, "device"),
    ],
)
def test_bad_parameter_values_are_refused_by_name(schema, override, problem):
    with pytest.raises(ValueError, match=problem):
        schema(**override).validate()

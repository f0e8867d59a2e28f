"""The public API: every promised name is there, documented with units, and its examples run."""

import doctest
import inspect
import re

import cryobox
import cryobox.api
import cryobox.api_maps

TYPES = {
    "ParticleTable",
    "BoxAdvice",
    "FscResult",
    "ResolutionComparison",
    "SamplingCompensation",
    "DirectionalResolution",
}


def test_public_names_and_numpy_docstrings():
    assert set(cryobox.__all__) == {"__version__", *cryobox.api.__all__}
    functions = [n for n in cryobox.api.__all__ if n not in TYPES]
    assert 8 <= len(functions) <= 12
    for name in TYPES:  # the types the functions return are promised and documented too
        assert name in cryobox.api.__all__ and inspect.isclass(getattr(cryobox, name))
        assert len(inspect.getdoc(getattr(cryobox, name))) > 40
    for name in functions:
        fn = getattr(cryobox, name)
        assert fn is getattr(cryobox.api, name)
        doc = inspect.getdoc(fn)
        for section in ("Parameters\n----------", "Returns\n-------", "Examples\n--------"):
            assert section in doc, (name, section)
        params = doc.split("Parameters\n----------")[1].split("Returns\n-------")[0]
        documented = set()
        for line in params.splitlines():
            m = re.match(r"^(\w+(?:, \w+)*) :", line)
            if m:
                documented.update(p.strip() for p in m.group(1).split(","))
        assert set(inspect.signature(fn).parameters) <= documented, name
        # a parameter whose name carries a unit says the unit in its description
        for p in inspect.signature(fn).parameters:
            unit = {"_a": "Å", "_px": "px", "_kv": "kV", "_mm": "mm", "_deg": "degree", "_a2": "Å²"}
            for suffix, word in unit.items():
                if p.endswith(suffix) and not p.endswith("_inv_a"):
                    block = params.split(p, 1)[1][:400]
                    assert word in block, (name, p, word)


def test_no_public_function_returns_a_plain_dict():
    """Every function of the API returns a named type (or arrays), never a bare dict."""
    for name in cryobox.api.__all__:
        fn = getattr(cryobox, name)
        if inspect.isclass(fn):
            continue
        ret = str(inspect.signature(fn).return_annotation)
        assert "dict" not in ret, (name, ret)


def test_the_result_types_carry_what_the_commands_compute():
    import numpy as np

    c = cryobox.compare_resolutions([3.7, 3.6, 3.8], [4.1, 4.0, 4.2], shell_width_inv_a=1 / (576 * 1.06))
    assert isinstance(c, cryobox.ResolutionComparison) and c.verdict == "finer" and c.p < 0.05
    assert c.ci_a[0] < c.difference_a < c.ci_a[1] < 0 and c.details["verdict"] == "finer"
    rng = np.random.default_rng(0)
    rot, tilt = rng.uniform(-180, 180, 5000), np.degrees(np.arccos(rng.uniform(-1, 1, 5000)))
    s = cryobox.sampling_compensation(rot, tilt)
    assert isinstance(s, cryobox.SamplingCompensation) and 0.9 < s.scf_star <= 1.05 and s.n_views_used == 5000
    h = rng.standard_normal((24, 24, 24)).astype(np.float32)
    d = cryobox.directional_resolution(h + rng.standard_normal(h.shape), h, pixel_size_a=2.0, n_directions=50)
    assert isinstance(d, cryobox.DirectionalResolution) and d.directions.shape == (50, 3)
    assert d.curves.shape == (50, 13) and d.frequency_inv_a.shape == (13,) and 0 < d.cfar <= 1


def test_api_examples_run():
    attempted = 0
    for module in (cryobox.api, cryobox.api_maps):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, module
        attempted += result.attempted
    assert attempted >= 10


def test_docs_schema_table_is_the_schema():
    from pathlib import Path

    from cryobox.io.schema import schema_markdown

    text = (Path(__file__).resolve().parents[1] / "docs" / "conventions.md").read_text()
    table = text.split("<!-- schema table: begin -->\n", 1)[1].split("<!-- schema table: end -->", 1)[0]
    assert table == schema_markdown()

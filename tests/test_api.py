"""The public API: every promised name is there, documented with units, and its examples run."""

import doctest
import inspect
import re

import cryobox
import cryobox.api
import cryobox.api_maps

TYPES = {"ParticleTable", "BoxAdvice", "FscResult"}


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

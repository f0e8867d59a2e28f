"""The public API: every promised name is there, documented with units, and its examples run."""

import doctest
import inspect
import re

import cryobox
import cryobox.api


def test_public_names_and_numpy_docstrings():
    assert set(cryobox.__all__) == {"__version__", *cryobox.api.__all__}
    assert 8 <= len(cryobox.api.__all__) <= 12
    for name in cryobox.api.__all__:
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
    result = doctest.testmod(cryobox.api, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 10 and result.failed == 0


def test_docs_schema_table_is_the_schema():
    from pathlib import Path

    from cryobox.io.schema import schema_markdown

    text = (Path(__file__).resolve().parents[1] / "docs" / "conventions.md").read_text()
    table = text.split("<!-- schema table: begin -->\n", 1)[1].split("<!-- schema table: end -->", 1)[0]
    assert table == schema_markdown()

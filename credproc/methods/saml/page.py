"""Find the SAML assertion in the page an identity provider answers with.

IdPs answer the SAML POST binding with an HTML page: a form whose hidden ``SAMLResponse``
field holds the base64 assertion, which a browser would post to AWS. We read that page
with lxml's HTML parser, chosen because it is

* tolerant: real IdP pages are HTML, often not well-formed XML, which an XML parser (what
  Airflow uses) refuses or misreads;
* safe: libxml2's HTML parser does not process a DOCTYPE's internal subset, so no entity
  is ever declared, let alone expanded (no XXE file read, no "billion laughs");
  ``no_network`` forbids fetching anything and ``huge_tree=False`` keeps libxml2's size
  and depth limits (the page arrives as bytes already decoded by requests);
* queryable with XPath, which ``saml_response_xpath`` needs (defusedxml offers no HTML
  parser, and the standard library's ``html.parser`` no XPath).

HTML names are case-insensitive but XPath's are not. The seed's example XPath
``//INPUT[@NAME='SAMLResponse']/@VALUE`` was written for upper-case markup and an XML
parser, while libxml2's HTML parser lower-cases every tag and attribute name. So the tree
is normalised to lower-case names (libxml2 already does it; we make sure), and so are the
names in the user's XPath: everything outside its string literals is lower-cased. That
changes nothing that could have matched (XPath's functions, axes and keywords are all
lower-case, and so is every name in the tree), and string literals - the values compared
against, such as ``'SAMLResponse'`` - keep their case.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml import etree  # imported where it is used: only a SAML connection's miss loads lxml

DEFAULT_XPATH = "//input[@name='SAMLResponse']/@value"


class PageError(Exception):
    """The page holds no single usable assertion. The message never quotes the page."""


class BadXPath(ValueError):
    """The configured XPath is not valid XPath (a configuration error)."""


@dataclass(frozen=True)
class Finder:
    """A compiled, case-normalised XPath for the assertion; ``expression`` is the user's own text."""

    expression: str
    _compiled: etree.XPath

    def find(self, content: bytes) -> str:
        """The base64 assertion in ``content``, whitespace removed; PageError otherwise."""
        from lxml import etree

        root = parse(content)
        try:
            result = self._compiled(root)
        except etree.XPathError as e:  # e.g. an unknown function: only found when evaluated
            raise BadXPath(f"cannot be evaluated: {e}") from None
        values = _values(result)
        if not values:
            raise PageError("matches nothing in the IdP page")
        if len(values) > 1:
            raise PageError(f"matches {len(values)} different values in the IdP page; it must select exactly one")
        return _base64(values[0])


def compile_xpath(expression: str | None) -> Finder:
    """A Finder for ``expression`` (the default finds the ``SAMLResponse`` form field).

    Raises BadXPath for an expression lxml cannot compile, before any IdP is asked.
    """
    from lxml import etree

    text = expression if expression is not None else DEFAULT_XPATH
    try:
        compiled = etree.XPath(lower_names(text), smart_strings=False)
    except etree.XPathSyntaxError as e:
        raise BadXPath(f"is not valid XPath: {e}") from None
    return Finder(expression=text, _compiled=compiled)


def lower_names(expression: str) -> str:
    """``expression`` with everything outside its string literals in lower case."""
    parts: list[str] = []
    quote = None
    start = 0
    for i, char in enumerate(expression):
        if quote is None and char in ("'", '"'):
            parts.append(expression[start:i].lower())
            quote, start = char, i
        elif char == quote:
            parts.append(expression[start:i + 1])  # the literal, case kept
            quote, start = None, i + 1
    tail = expression[start:]
    parts.append(tail if quote is not None else tail.lower())  # an unclosed literal: lxml will say so
    return "".join(parts)


def parse(content: bytes) -> etree._Element:
    """The page as an element tree with lower-case tag and attribute names."""
    from lxml import etree

    parser = etree.HTMLParser(no_network=True, huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(content, parser)
    except (etree.XMLSyntaxError, ValueError):
        root = None
    if root is None:
        raise PageError("the IdP page is empty or not HTML")
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag != element.tag.lower():
            element.tag = element.tag.lower()
        upper = [name for name in element.attrib if name != name.lower()]
        for name in upper:
            value = element.attrib.pop(name)
            element.set(name.lower(), value)
    return root


def _values(result: object) -> list[str]:
    """The distinct non-blank strings an XPath result stands for, in page order.

    Attribute values and text nodes are strings; an element stands for its ``value``
    attribute when it has one (``//input[@name='SAMLResponse']``), else for its text.
    """
    from lxml import etree

    if isinstance(result, (bool, float, int)):
        raise BadXPath(f"yields a {type(result).__name__}, not the assertion text")
    items = result if isinstance(result, list) else [result]
    found: list[str] = []
    for item in items:
        if isinstance(item, str):
            value = item
        elif isinstance(item, etree._Element):
            attribute = item.get("value")
            value = attribute if attribute is not None else "".join(item.itertext())
        else:
            continue
        value = value.strip()
        if value and value not in found:
            found.append(value)
    return found


def _base64(value: str) -> str:
    """``value`` without whitespace, checked to be base64 (some IdPs wrap it in lines)."""
    compact = "".join(value.split())
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise PageError("selects a value that is not base64, so not a SAML response") from None
    return compact

"""HTML message bodies made safe to show (issue #6: no scripts, no remote content, no forms).

An allow-list, applied by nh3 (the Ammonia sanitiser): only text-formatting tags survive,
without any event handler, style or class attribute (CSS can fetch remote content); scripts,
styles, forms, frames, objects, images and media are removed with their content, so nothing
is fetched when the message is shown. Links keep http(s) and mailto targets only and open
without a referrer. The page's Content-Security-Policy (``default-src 'self'``) stands behind
this in case anything slipped through.
"""

from __future__ import annotations

from typing import Final

import nh3

__all__ = ["clean_html"]

ALLOWED_TAGS: Final = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "dd",
        "del",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "ins",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
    }
)
# Removed together with everything inside them.
DROPPED_WITH_CONTENT: Final = frozenset(
    {
        "script",
        "style",
        "template",
        "noscript",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "form",
        "button",
        "input",
        "select",
        "textarea",
        "svg",
        "math",
        "title",
        "head",
        "audio",
        "video",
        "canvas",
        "img",
        "picture",
        "source",
        "link",
        "meta",
        "base",
    }
)
ALLOWED_ATTRIBUTES: Final = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
URL_SCHEMES: Final = frozenset({"http", "https", "mailto"})


def clean_html(html: str) -> str:
    """The safe fragment of an untrusted HTML body (never a whole document)."""
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )

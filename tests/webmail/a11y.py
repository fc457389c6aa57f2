"""Automated accessibility checks run in the browser on every page (WCAG 2.1 AA subset).

Written for this project instead of installing axe-core (no npm step in CI): each check is a
WCAG success criterion we can decide mechanically on our server-rendered pages.

* 3.1.1 language of page: ``<html lang="fr">``;
* 1.3.1 / 2.4.6: one ``h1``, heading levels never skip (h1 → h3);
* 1.3.1 / 4.1.2: every form control has a label (``label[for]``, wrapping label, aria-label);
  every link and button has an accessible name; every image an ``alt``;
* 1.4.3 contrast (minimum): computed text colour against the first opaque background behind
  it, ≥ 4.5:1 (3:1 for large text);
* 2.4.1 bypass blocks: the first Tab stop is the skip link to ``#contenu``;
* 2.4.7 focus visible: the focused element shows an outline;
* 1.4.10 reflow: no horizontal scrolling at 320 CSS pixels wide.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

CHECKS_JS = r"""
() => {
  const problems = [];
  const visible = (el) => {
    const s = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    return s.visibility !== 'hidden' && s.display !== 'none' && r.width > 0 && r.height > 0;
  };
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ')[0] : '');
  if (document.documentElement.lang !== 'fr') problems.push('html lang is not fr');
  if (!document.title.trim()) problems.push('empty <title>');
  const headings = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')];
  const h1s = headings.filter(h => h.tagName === 'H1');
  if (h1s.length !== 1) problems.push(`${h1s.length} h1 elements`);
  let last = 0;
  for (const h of headings) {
    const level = Number(h.tagName[1]);
    if (last && level > last + 1) problems.push(`heading level skips: h${last} -> h${level}`);
    last = level;
  }
  for (const el of document.querySelectorAll('input,select,textarea')) {
    if (el.type === 'hidden') continue;
    const named = (el.id && document.querySelector(`label[for="${el.id}"]`)) ||
        el.closest('label') || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
    if (!named) problems.push('form control without label: ' + describe(el));
  }
  for (const el of document.querySelectorAll('a,button')) {
    const name = (el.innerText || el.getAttribute('aria-label') || el.title || '').trim();
    if (!name) problems.push('control without accessible name: ' + describe(el));
  }
  for (const img of document.querySelectorAll('img')) {
    if (!img.hasAttribute('alt')) problems.push('img without alt');
  }
  const rgba = (text) => {
    const m = text.match(/rgba?\(([^)]+)\)/);
    if (!m) return [0, 0, 0, 0];
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const bg = rgba(getComputedStyle(e).backgroundColor);
      if (bg[3] >= 0.99) return bg;
    }
    return [255, 255, 255, 1];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || seen.has(el) || !visible(el)) continue;
    seen.add(el);
    const s = getComputedStyle(el);
    const fg = rgba(s.color), bg = background(el);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) {
      const text = node.textContent.trim().slice(0, 30);
      problems.push(`contrast ${ratio.toFixed(2)} for "${text}" in ${describe(el)}`);
    }
  }
  return problems;
}
"""


def check_page(page: Page) -> list[str]:
    """Problems found on the current page (empty when it passes)."""
    problems: list[str] = list(page.evaluate(CHECKS_JS))
    # 2.4.1 and 2.4.7: the first Tab reaches the skip link, and focus is visible.
    page.evaluate(
        "() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }"
    )
    page.keyboard.press("Tab")
    focused: dict[str, Any] = page.evaluate(
        """() => { const el = document.activeElement; const s = getComputedStyle(el);
        return {href: el.getAttribute('href') || '', outline: s.outlineStyle,
                width: parseFloat(s.outlineWidth) || 0}; }"""
    )
    if focused["href"] != "#contenu":
        problems.append(f"first Tab stop is not the skip link: {focused}")
    if focused["outline"] == "none" or focused["width"] < 2:
        problems.append(f"focus not visible on the skip link: {focused}")
    # 1.4.10: content reflows at 320 CSS pixels.
    size = page.viewport_size
    page.set_viewport_size({"width": 320, "height": 640})
    overflow = page.evaluate("() => document.documentElement.scrollWidth > 320 + 1")
    if overflow:
        problems.append("horizontal scrolling at 320 px wide")
    if size is not None:
        page.set_viewport_size(size)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    return problems

"""The visible text of an HTML report, for tests that compare a page with the JSON."""

import html
import re


def visible_text(page: str) -> str:
    """``page`` without its inline images and style sheet, tags as spaces, entities decoded
    and runs of white space collapsed to one space."""
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    text = re.sub(r"<style>.*?</style>", "", text, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))

"""OpenAI content parts with media -> Gemini parts; tool results with images (pure functions).

Gemini needs a MIME type on every ``inlineData`` and ``fileData`` part (``mimeType`` is
"Required" in the API reference and in google-genai's ``FileData``/``Blob``). Where it comes from,
in order: the ``data:`` URL's own type; the client's hint (``image_url.format``, LiteLLM's
convention for exactly this, or ``image_url.mime_type``); the URL path's extension. An https URL
without any of these (``.../render?id=42``) is refused with a 400 that says how to fix it, rather
than labelled ``image/jpeg`` and sent: a PNG or WebP under a JPEG label is misread or rejected, and
the gateway does not fetch client URLs itself (that would let clients make it call anywhere).

Images in tool results: Gemini 3 takes them inside the function response
(``functionResponse.parts[].inlineData``, "multimodal function responses",
https://ai.google.dev/gemini-api/docs/function-calling#multimodal); URI data is "not supported in
Gemini API" there (google-genai ``FunctionResponsePart.file_data``). Everything else (Gemini 2.5,
URLs) goes as ordinary user parts right after the function responses of that turn.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from llm_factory_core.providers import json_loads

from ._errors import EncodeError

__all__ = ["media_part", "mime_type_of_url", "tool_result"]

_URL_SCHEMES = ("https://", "http://", "gs://")


def mime_type_of_url(url: str, hint: Any = None) -> str | None:
    """The MIME type of a file URL from the client's hint or the path's extension, else None."""
    if isinstance(hint, str) and "/" in hint:
        return hint.strip().lower()
    path = url.split("?", 1)[0].split("#", 1)[0]
    return mimetypes.guess_type(path, strict=False)[0]


def media_part(url: str, i: int, hint: Any = None) -> dict[str, Any]:
    """``inlineData`` for a ``data:`` URL, ``fileData`` for a URL Gemini reads itself."""
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        if not comma or not header.endswith(";base64"):
            raise EncodeError(f"messages[{i}]: a data: URL must be base64 (data:<mime>;base64,...)")
        return {"inlineData": {"mimeType": header[: -len(";base64")] or "application/octet-stream", "data": data}}
    if url.startswith(_URL_SCHEMES):
        mime = mime_type_of_url(url, hint)
        if mime is None:
            raise EncodeError(
                f"messages[{i}]: cannot tell the media type of {url[:80]!r} (Gemini needs one): give it "
                'in image_url.format (e.g. "image/png"), send a data: URL, or use a URL whose path ends '
                "in an extension such as .png"
            )
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise EncodeError(f"messages[{i}]: unsupported image URL (use a data: URL or an https:// file URI)")


def _image_of(part: dict[str, Any], i: int) -> dict[str, Any]:
    image = part.get("image_url")
    if isinstance(image, dict):
        return media_part(str(image.get("url") or ""), i, image.get("format") or image.get("mime_type"))
    return media_part(str(image or ""), i)


def tool_result(content: Any, i: int, *, multimodal: bool) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """``(response, functionResponse parts, user parts to follow)`` for a tool message.

    Gemini wants ``response`` to be an object: a JSON object result is passed as is, anything
    else is wrapped as ``{"result": ...}``."""
    inner: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "image_url":
                media = _image_of(part, i)
                if multimodal and "inlineData" in media:
                    inner.append(media)
                else:
                    after.append(media)
            elif kind in ("text", "input_text", "output_text") or "text" in part:
                texts.append(str(part.get("text", "")))
            else:
                raise EncodeError(f"messages[{i}]: unsupported part type {kind!r} in a tool result")
        content = "".join(texts)
    return _response_object(content), inner, after


def _response_object(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        try:
            value = json_loads(content)
        except ValueError:
            return {"result": content}
        return value if isinstance(value, dict) else {"result": value}
    return {"result": content}

"""Checking a user's prompt before it reaches an encoder (the demo calls this), and reading it with the
built-in world's grammars (`read_prompt`, from `xlcore.world.reading`: the scene it describes, its
English, the words the world lacks).

A prompt is cleaned, not silently changed: control characters are removed and runs of whitespace folded
(both would otherwise become tokens the encoders never saw), an empty or whitespace-only prompt is an
error, and a prompt longer than the text encoders read is cut at a word boundary, with a note saying so
(the encoders would truncate it anyway, but silently: the user should know what was drawn).
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, field

from .errors import PromptError
from .world.reading import Reading, normalise, read_prompt, vocabulary  # noqa: F401 (the prompt API)

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 300  # well past what any encoder here reads (77 CLIP tokens, toy: 24 / 64 tokens)


@dataclass(frozen=True)
class Prompt:
    """A checked prompt and what was done to it."""

    text: str
    notes: tuple[str, ...] = field(default=())

    @property
    def truncated(self) -> bool:
        return any(note.startswith("truncated") for note in self.notes)


def _strip_control(text: str) -> tuple[str, int]:
    kept, removed = [], 0
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn") and char not in "\t\n\r":
            removed += 1
            continue
        kept.append(char)
    return "".join(kept), removed


def check_prompt(text: object, max_chars: int = MAX_PROMPT_CHARS, tokenizer=None) -> Prompt:
    """The prompt to draw for `text`, with notes; raises PromptError for an empty or non-text prompt.

    `tokenizer` (a Hugging Face tokenizer) also cuts the prompt to what it reads (`model_max_length`,
    special tokens included), at a word boundary where there is one."""
    if not isinstance(text, str):
        raise PromptError(f"a prompt is text, got {type(text).__name__}")
    cleaned, removed = _strip_control(unicodedata.normalize("NFC", text))
    cleaned = " ".join(cleaned.split())
    notes: list[str] = []
    if removed:
        notes.append(f"removed {removed} control character{'s' if removed != 1 else ''}")
    if not cleaned:
        raise PromptError("the prompt is empty: type what to draw" + (" (it held only control characters)"
                                                                       if removed else ""))
    if len(cleaned) > max_chars:
        cleaned = _cut(cleaned, max_chars)
        notes.append(f"truncated to {len(cleaned)} characters (the limit is {max_chars})")
    if tokenizer is not None:
        limit = tokenizer.model_max_length

        def length(text: str) -> int:
            return len(tokenizer(text, truncation=False, verbose=False)["input_ids"])

        if length(cleaned) > limit:
            words = cleaned.split(" ")
            while len(words) > 1 and length(" ".join(words)) > limit:
                words.pop()
            kept = " ".join(words)
            if length(kept) > limit:  # one long word (Chinese and Japanese have no spaces)
                ids = tokenizer(kept, truncation=True, max_length=limit)["input_ids"]
                kept = tokenizer.decode(ids, skip_special_tokens=True).strip() or kept[:1]
            notes.append(f"truncated to {length(kept)} tokens (the text encoder reads {limit}): {kept!r}")
            cleaned = kept
    for note in notes:
        log.warning("prompt: %s", note)
    return Prompt(cleaned, tuple(notes))


def _cut(text: str, max_chars: int) -> str:
    head = text[:max_chars]
    space = head.rfind(" ")
    return head[:space] if space > max_chars // 2 else head

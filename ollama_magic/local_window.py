"""Fitting a chat into the embedded model's context window the way Ollama does.

Ollama does not refuse an over-long prompt by default. It drops the oldest messages of a
conversation (never the system prompt or the newest message), then cuts the newest message from
its start, so the model sees the end of what was asked. llama.cpp's Python binding refuses
instead. Doing what Ollama does keeps a notebook's behaviour the same on both, and lets the
answer say how much the model did not see (the teaching lens's "did it forget?").
"""

from __future__ import annotations

from collections.abc import Callable

Messages = list[dict[str, str]]


def fit_messages(
    messages: Messages,
    limit: int,
    count: Callable[[Messages], int],
    drop_start: Callable[[str, int], str],
) -> tuple[Messages, int]:
    """``messages`` cut to at most ``limit`` prompt tokens, and how many tokens were cut.

    ``count`` gives a chat's prompt size in tokens (template included); ``drop_start(text, n)``
    is ``text`` without its first ``n`` tokens. Here, one word is one token:

    >>> words = lambda chat: sum(len(m["content"].split()) for m in chat)
    >>> drop = lambda text, n: " ".join(text.split()[n:])
    >>> chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a b c"},
    ...         {"role": "assistant", "content": "d e"}, {"role": "user", "content": "f g h i"}]
    >>> fit_messages(chat, 11, words, drop)[1]
    0
    >>> fitted, cut = fit_messages(chat, 5, words, drop)
    >>> [m["content"] for m in fitted], cut
    (['be brief', 'g h i'], 6)
    >>> chat[-1]["content"]  # the caller's messages are left as they were
    'f g h i'
    """
    total = count(messages)
    if total <= limit:
        return messages, 0
    before = total
    fitted = list(messages)
    while total > limit:
        older = next((i for i, m in enumerate(fitted[:-1]) if m.get("role") != "system"), None)
        if older is None:
            break
        del fitted[older]
        total = count(fitted)
    newest = dict(fitted[-1])
    while total > limit and newest.get("content"):
        shorter = drop_start(newest["content"], total - limit)
        if shorter == newest["content"]:
            break
        newest["content"] = shorter
        fitted[-1] = newest
        total = count(fitted)
    return fitted, before - total

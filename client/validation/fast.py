"""Fast path: msgspec types that accept only examples that are plainly valid.

Decoding into these types checks structure, roles, non-empty content and weights in
C. A line they reject is not necessarily wrong (tool calls, content parts): it goes to
the careful checks in `examples.py`, which decide and explain. So these types must
never accept a line that the careful checks would reject.
"""

from typing import Annotated, Literal

import msgspec

# Non-empty here; whitespace-only text is caught after decoding with `str.isspace`,
# which costs far less than a regular expression run inside the decoder.
Text = Annotated[str, msgspec.Meta(min_length=1)]


class PlainMessage(msgspec.Struct):
    role: Literal["system", "user", "assistant"]
    content: Text
    weight: Literal[0, 1] | msgspec.UnsetType = msgspec.UNSET


class PlainChat(msgspec.Struct, forbid_unknown_fields=True):
    messages: Annotated[list[PlainMessage], msgspec.Meta(min_length=1)]


class PlainPromptCompletion(msgspec.Struct, forbid_unknown_fields=True):
    prompt: Text
    completion: Text


class PlainText(msgspec.Struct, forbid_unknown_fields=True):
    text: Text


DECODERS = {
    "chat": msgspec.json.Decoder(PlainChat),
    "prompt_completion": msgspec.json.Decoder(PlainPromptCompletion),
    "text": msgspec.json.Decoder(PlainText),
}

# What a fast decode can raise for a line the careful path must look at.
REJECTED = (msgspec.DecodeError, UnicodeDecodeError)

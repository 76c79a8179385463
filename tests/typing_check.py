"""Type-checked by mypy (not run by pytest): the public API as users write against it."""

from __future__ import annotations

import ocilm
from ocilm import AsyncStream, ChatCompletion, ChatCompletionChunk, Client, Stream


def sync_use() -> str | None:
    reply: ChatCompletion = ocilm.completion("oci/xai.grok-4", [{"role": "user", "content": "Hi"}])
    stream: Stream = ocilm.completion("oci/xai.grok-4", [{"role": "user", "content": "Hi"}], stream=True)
    for chunk in stream:
        first: ChatCompletionChunk = chunk
        del first
    with Client(oci_profile="DEFAULT") as client:
        again: ChatCompletion = client.completion("oci/xai.grok-4", [])
        del again
    return reply.choices[0].message.content  # type: ignore[no-any-return]


async def async_use() -> None:
    reply: ChatCompletion = await ocilm.acompletion("oci/xai.grok-4", [])
    stream: AsyncStream = await ocilm.acompletion("oci/xai.grok-4", [], stream=True)
    async for _chunk in stream:
        pass
    del reply

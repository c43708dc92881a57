"""``python -m ollama_magic run`` never waits forever for a reply that has already arrived."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import zmq
from jupyter_client.manager import start_new_async_kernel
from nbformat.v4 import new_code_cell, new_notebook

from ollama_magic.__main__ import _make_client_class

BUSY = {
    "msg_type": "status",
    "header": {"msg_type": "status"},
    "parent_header": {},
    "metadata": {},
    "content": {"execution_state": "busy"},
}


async def _reply_seen_after_a_blocking_look_at_the_shell_socket() -> bool:
    km, kc = await start_new_async_kernel(kernel_name="python3")
    try:
        runner = _make_client_class()(new_notebook(), record_timing=False)
        runner.kc = kc
        waiting = asyncio.ensure_future(kc.shell_channel.get_msg(timeout=None))
        await asyncio.sleep(0)  # one turn of the loop: the wait is now registered with pyzmq
        msg_id = kc.kernel_info()
        # What nbclient's Output widget echo does when it sends on the shell channel: a
        # blocking view of the socket handles ZeroMQ's pending signals, here the one saying
        # that the reply is in. Without a second look the wait above would never wake.
        blocking = zmq.Socket.shadow(kc.shell_channel.socket.underlying)
        assert blocking.poll(30_000) & zmq.POLLIN
        runner.process_message(BUSY, new_code_cell(), 0)
        done, _ = await asyncio.wait({waiting}, timeout=30)
        if not done:
            waiting.cancel()
            return False
        return waiting.result()["parent_header"]["msg_id"] == msg_id
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


def test_a_reply_that_arrived_during_a_widget_echo_still_ends_the_cell():
    # A thread of its own: the browser tests' Playwright keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        seen = pool.submit(asyncio.run, _reply_seen_after_a_blocking_look_at_the_shell_socket())
        assert seen.result()

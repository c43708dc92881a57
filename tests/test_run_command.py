"""``python -m ollama_magic run`` never waits forever for a reply that has already arrived."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import zmq
from nbformat.v4 import new_notebook

from ollama_magic.__main__ import _make_client_class


async def _reply_seen_after_a_widget_echo() -> bool:
    runner = _make_client_class()(new_notebook(), kernel_name="python3")
    km = runner.create_kernel_manager()
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        # wait_for_ready sends kernel_info again whenever a reply takes over a second (a busy
        # machine), and the late replies stay queued; read up to the reply of one more request,
        # so that the reply below is the only message still to come on the shell channel.
        settled = kc.kernel_info()
        while (await kc.shell_channel.get_msg(timeout=30))["parent_header"]["msg_id"] != settled:
            pass
        waiting = asyncio.ensure_future(kc.shell_channel.get_msg(timeout=None))
        await asyncio.sleep(0)  # one turn of the loop: the wait is now registered with pyzmq
        msg_id = kc.kernel_info()
        # Wait for the reply with a blocking view of the socket, as jupyter_client's sends use:
        # it handles ZeroMQ's pending signals, here the one saying that the reply is in.
        blocking = zmq.Socket.shadow(kc.shell_channel.socket.underlying)
        assert blocking.poll(30_000) & zmq.POLLIN
        # What nbclient sends for output captured by an Output widget; the kernel sends no
        # reply to it, so only a second look at the socket can wake the wait above.
        echo = {"comm_id": "no-such-comm", "data": {"method": "update", "state": {}}}
        kc.shell_channel.send(kc.session.msg("comm_msg", echo))
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
        assert pool.submit(asyncio.run, _reply_seen_after_a_widget_echo()).result()

"""Benchmarks for ``%%ollama`` in a real kernel, against the package's fake Ollama server.

Run ``python -m benchmarks`` from the repository root (``--help`` lists the options). The
harness starts one IPython kernel through jupyter_client and one fake Ollama server in its own
process, streams the same answers through each way of showing them (plain ``requests``, the
usual ``print`` loop, the official ``ollama`` client, ``%%ollama`` live and ``--quiet``),
alternating between them, and reads what the kernel sends to the front end as raw IOPub bytes.
"""

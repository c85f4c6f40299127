"""order-machine benchmarks: each module measures one part beside the peer a user would otherwise pick.

Run with `python -m bench [NAME ...] [--quick]`; never imported by the package or its tests (bar a smoke test).
"""

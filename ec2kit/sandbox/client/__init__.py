"""The sandbox's client side: start, find and stop the daemon, turn its knobs, find an instance's sshd.

Standard library only (the CLI imports it at start-up); moto and boto3 live in the daemon process.
Inside, imports go ``info`` ← ``process`` ← ``knobs`` | ``resolver``.
"""

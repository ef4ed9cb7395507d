"""The sandbox daemon: one background process per state directory (``python -m ec2kit.sandbox.daemon``).

``main`` starts moto's server (patched by ``..moto``), the control and metadata HTTP server (``routes``,
acting through ``control``) and the ``reconciler``, which keeps one ``sshd`` host per running instance
(``reach`` gates SSH by security groups, ``volumes`` attaches EBS volumes as loop devices). Nothing here
is imported by the client.
"""

"""moto as the sandbox's EC2: its server in a thread (``motoserver``) and the AWS behaviours taught to it.

``aws_behaviours.install()`` patches moto's classes: SSM public parameters and the seeded ``images``,
Service Quotas, vCPU quotas and capacity pools (``limits``, reading the pretend ``account``), and
CreateFleet (``fleets``). Imported only by the daemon (it needs moto); nothing here imports ``daemon``.
"""

"""The local sandbox cloud: moto's EC2 server plus one real sshd per running instance."""

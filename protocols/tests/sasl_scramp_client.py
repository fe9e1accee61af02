#!/usr/bin/env python3
"""SCRAM-SHA-256 client from PyPI's `scramp` (written by nobody here), driven over
stdin/stdout by protocols/tests/sasl_scramp.rs.

    scramp_client.py USERNAME PASSWORD

Writes the client-first message, reads server-first, writes client-final, reads
server-final; every message is one line of text. Prints "verified" when scramp
accepted the server signature, "rejected: ..." when it did not. Exit 3 if scramp
is missing (pip install scramp).
"""
import sys

try:
    from scramp import ScramClient
except ImportError:
    print("scramp missing: pip install scramp", flush=True)
    sys.exit(3)


def main():
    user, password = sys.argv[1], sys.argv[2]
    client = ScramClient(["SCRAM-SHA-256"], user, password)
    print(client.get_client_first(), flush=True)
    client.set_server_first(sys.stdin.readline().rstrip("\r\n"))
    print(client.get_client_final(), flush=True)
    try:
        client.set_server_final(sys.stdin.readline().rstrip("\r\n"))
    except Exception as e:  # scramp.ScramException
        print("rejected: %s" % e, flush=True)
        return 1
    print("verified", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

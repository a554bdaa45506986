import sys

from hello_py import GREETING


def main():
    print(f"{GREETING} on python {sys.version_info[0]}.{sys.version_info[1]}")
    return 0

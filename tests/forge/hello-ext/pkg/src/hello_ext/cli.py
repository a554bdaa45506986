import sys

from hello_ext import triple


def main():
    value = int(sys.argv[1]) if len(sys.argv) > 1 else 14
    print(f"the C extension says {triple(value)}")
    return 0

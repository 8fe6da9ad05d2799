import re
import sys
import time

SLOW = "--slow" in sys.argv
WORD = re.compile(r"\w+")


def tokenize(line, i):
    if SLOW:  # the change: a pattern built per call (defeats re's cache)
        return re.compile(r"(\w+)=(\d+)|" + str(i % 5000)).findall(line)
    return WORD.findall(line)


def parse(line, i):
    return tokenize(line, i)


def handle(i):
    return parse("a=1 b=2 c=3 " * 4, i) and sum(j * j for j in range(300))


def serve(seconds):
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        handle(i)
        i += 1


def main():
    serve(2.5)


if __name__ == "__main__":
    main()

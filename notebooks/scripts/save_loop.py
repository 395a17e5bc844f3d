"""Write the same file over and over until killed, directly or atomically (notebook 12b).

Each version is a header line with the SHA-256 of the payload, then the payload. After a kill, a
file whose payload does not match its header (or is cut short) is a corrupt checkpoint.

    python save_loop.py PATH direct|atomic SIZE_MB
"""

import hashlib
import os
import sys


def main() -> None:
    path, mode, size_mb = sys.argv[1], sys.argv[2], float(sys.argv[3])
    payloads = [bytes([v]) * int(size_mb * 2**20) for v in (1, 2)]  # two versions, prepared once
    headers = [hashlib.sha256(p).hexdigest().encode() + b"\n" for p in payloads]
    chunk = 2**20
    version = 0
    while True:
        payload, header = payloads[version % 2], headers[version % 2]
        target = path + ".partial" if mode == "atomic" else path
        with open(target, "wb") as f:  # "wb" truncates: from here until the last chunk the file is incomplete
            f.write(header)
            for start in range(0, len(payload), chunk):  # a serializer writes piece by piece, like torch.save
                f.write(payload[start:start + chunk])
        if mode == "atomic":
            os.replace(target, path)  # atomic on POSIX: readers see the old file or the new one, never half
        print(version, flush=True)
        version += 1

if __name__ == "__main__":
    main()

# A client that pipelines: the handshake response and its first queries in one write, before
# the server's OK (as MariaDB Connector/J may), optionally with the compressed protocol.
import hashlib, socket, struct, sys, zlib

host, port, user, password, db, compress = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6] == "1"
s = socket.create_connection((host, port))

def read_exact(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise SystemExit("connection closed")
        b += c
    return b

def packet():
    h = read_exact(4)
    return h[3], read_exact(h[0] | h[1] << 8 | h[2] << 16)

def pkt(seq, body):
    return struct.pack("<I", len(body))[:3] + bytes([seq]) + body

seq, greeting = packet()
at = 1 + greeting.index(b"\0", 1) + 4
scramble = greeting[at:at + 8]
at += 8 + 1
caps_lo = struct.unpack("<H", greeting[at:at + 2])[0]
at += 2 + 1 + 2
caps_hi = struct.unpack("<H", greeting[at:at + 2])[0]
at += 2 + 1 + 10
scramble += greeting[at:at + 12]
server_caps = caps_lo | caps_hi << 16

def native(pw, salt):
    h1 = hashlib.sha1(pw.encode()).digest()
    h2 = hashlib.sha1(h1).digest()
    h3 = hashlib.sha1(salt + h2).digest()
    return bytes(a ^ b for a, b in zip(h1, h3))

CLIENT_LONG_PASSWORD, CLIENT_CONNECT_WITH_DB, CLIENT_COMPRESS = 1, 8, 32
CLIENT_PROTOCOL_41, CLIENT_TRANSACTIONS, CLIENT_SECURE_CONNECTION = 512, 8192, 32768
CLIENT_MULTI_RESULTS, CLIENT_PLUGIN_AUTH, CLIENT_DEPRECATE_EOF = 1 << 17, 1 << 19, 1 << 24
caps = (CLIENT_LONG_PASSWORD | CLIENT_CONNECT_WITH_DB | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_RESULTS | CLIENT_PLUGIN_AUTH | CLIENT_DEPRECATE_EOF)
if compress:
    caps |= CLIENT_COMPRESS
caps &= server_caps
token = native(password, scramble)
response = (struct.pack("<IIB", caps, 1 << 24, 45) + b"\0" * 23 + user.encode() + b"\0"
            + bytes([len(token)]) + token + db.encode() + b"\0" + b"mysql_native_password\0")
queries = [b"SELECT 1", b"SELECT 2, 3", b"SELECT nope FROM nowhere"]

def compressed_frame(seq, data):
    z = zlib.compress(data)
    return struct.pack("<I", len(z))[:3] + bytes([seq]) + struct.pack("<I", len(data))[:3] + z

out = pkt(1, response)
for q in queries:
    p = pkt(0, b"\x03" + q)
    out += compressed_frame(0, p) if compress else p
s.sendall(out)

seq, ok = packet()
if ok[0] != 0:
    raise SystemExit("login refused: %r" % ok)

buf = b""
def cpacket():
    # One inner packet of the compressed stream.
    global buf
    while True:
        if len(buf) >= 4:
            n = buf[0] | buf[1] << 8 | buf[2] << 16
            if len(buf) >= 4 + n:
                p, buf = buf[4:4 + n], buf[4 + n:]
                return p
        h = read_exact(7)
        clen = h[0] | h[1] << 8 | h[2] << 16
        ulen = h[4] | h[5] << 8 | h[6] << 16
        body = read_exact(clen)
        buf += zlib.decompress(body) if ulen else body

def next_packet():
    return cpacket() if compress else packet()[1]

for q in queries:
    first = next_packet()
    if first[0] == 0xFF:
        print("error", struct.unpack("<H", first[1:3])[0])
        continue
    ncols = first[0]
    for _ in range(ncols):
        next_packet()
    rows = 0
    while True:
        p = next_packet()
        if p[0] == 0xFE and len(p) < 0xFFFFFF:
            break
        rows += 1
    print("rows", rows, "columns", ncols)
quit_ = pkt(0, b"\x01")
s.sendall(compressed_frame(0, quit_) if compress else quit_)
s.close()

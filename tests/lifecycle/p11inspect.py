# SPDX-License-Identifier: Apache-2.0
"""Opens a PKCS#11 token independently of keymgr and lists its objects.

Plain ctypes on the module's exported C_* functions: no keymgr code, no extra package.
The user PIN is read from a file (never a command line); it is used for C_Login only, so
that private objects are listed too.

Usage: /usr/bin/python3 p11inspect.py MODULE TOKEN-LABEL PIN-FILE [--destroy-id HEX]
                                      [--allow-decrypt-id HEX]
With --destroy-id, every object whose CKA_ID is HEX is destroyed first (a change made
behind keymgr's back, for the compliance tests), then the remaining objects are listed.
With --allow-decrypt-id, the private keys whose CKA_ID is HEX get CKA_DECRYPT=TRUE first
(C_SetAttributeValue: a key made unsafe behind keymgr's back).
Prints one JSON document: {"label":..., "serial":..., "objects":[{"class":"private"|
"public"|"data"|..., "id":HEX, "label":TEXT}, ...]} and exits 0 (an object without a CKA_ID,
such as a data object, has "id" ""; a private key also has "sensitive", "extractable",
"decrypt", "unwrap" and "copyable": true, false or null when the token does not report it); exits 1 with a message on stderr
(the C_* function and its CK_RV, never the PIN) when the token cannot be opened or logged in.
"""
import ctypes
import json
import sys

CK_ULONG = ctypes.c_ulong
CKF_SERIAL_SESSION = 0x4
CKF_RW_SESSION = 0x2
CKU_USER = 1
CKA_CLASS = 0x0
CKA_LABEL = 0x3
CKA_ID = 0x102
CKA_SENSITIVE = 0x103
CKA_DECRYPT = 0x105
CKA_UNWRAP = 0x107
CKA_EXTRACTABLE = 0x162
CKA_COPYABLE = 0x171
CKR_ATTRIBUTE_TYPE_INVALID = 0x12
PRIVATE_FLAGS = {"sensitive": CKA_SENSITIVE, "extractable": CKA_EXTRACTABLE,
                 "decrypt": CKA_DECRYPT, "unwrap": CKA_UNWRAP, "copyable": CKA_COPYABLE}
CLASSES = {0: "data", 1: "certificate", 2: "public", 3: "private", 4: "secret"}


class Attribute(ctypes.Structure):
    _fields_ = [("type", CK_ULONG), ("pValue", ctypes.c_void_p), ("ulValueLen", CK_ULONG)]


class P11Error(Exception):
    pass


def call(fn, name, *args):
    rv = fn(*args)
    if rv != 0:
        raise P11Error(f"{name} failed: CK_RV 0x{rv:x}")


def read_attr(lib, session, handle, atype):
    attr = Attribute(atype, None, 0)
    call(lib.C_GetAttributeValue, "C_GetAttributeValue", session, CK_ULONG(handle),
         ctypes.byref(attr), CK_ULONG(1))
    buf = ctypes.create_string_buffer(max(attr.ulValueLen, 1))
    attr.pValue = ctypes.cast(buf, ctypes.c_void_p)
    call(lib.C_GetAttributeValue, "C_GetAttributeValue", session, CK_ULONG(handle),
         ctypes.byref(attr), CK_ULONG(1))
    return buf.raw[:attr.ulValueLen]


def read_opt(lib, session, handle, atype):
    """The attribute's value, or None when the object has no such attribute."""
    try:
        return read_attr(lib, session, handle, atype)
    except P11Error as e:
        if str(e).endswith(f"0x{CKR_ATTRIBUTE_TYPE_INVALID:x}"):
            return None
        raise


def find_slot(lib, label):
    count = CK_ULONG(0)
    call(lib.C_GetSlotList, "C_GetSlotList", ctypes.c_ubyte(1), None, ctypes.byref(count))
    slots = (CK_ULONG * max(count.value, 1))()
    call(lib.C_GetSlotList, "C_GetSlotList", ctypes.c_ubyte(1), slots, ctypes.byref(count))
    for i in range(count.value):
        info = ctypes.create_string_buffer(1024)  # CK_TOKEN_INFO is about 200 bytes
        call(lib.C_GetTokenInfo, "C_GetTokenInfo", CK_ULONG(slots[i]), info)
        have = info.raw[0:32].decode("utf-8", "replace").rstrip(" ")
        serial = info.raw[80:96].decode("ascii", "replace").rstrip(" ")
        if have == label:
            return slots[i], serial
    raise P11Error(f"no token labelled '{label}'")


def inspect(module, label, pin_file, destroy_id=None, decrypt_id=None):
    lib = ctypes.CDLL(module)
    call(lib.C_Initialize, "C_Initialize", None)
    try:
        slot, serial = find_slot(lib, label)
        session = CK_ULONG(0)
        call(lib.C_OpenSession, "C_OpenSession", CK_ULONG(slot),
             CK_ULONG(CKF_SERIAL_SESSION | CKF_RW_SESSION), None, None, ctypes.byref(session))
        with open(pin_file, "rb") as f:
            pin = f.read().rstrip(b"\r\n")
        call(lib.C_Login, "C_Login", session, CK_ULONG(CKU_USER), ctypes.c_char_p(pin),
             CK_ULONG(len(pin)))
        del pin
        call(lib.C_FindObjectsInit, "C_FindObjectsInit", session, None, CK_ULONG(0))
        handles = []
        batch = (CK_ULONG * 64)()
        n = CK_ULONG(0)
        while True:
            call(lib.C_FindObjects, "C_FindObjects", session, batch, CK_ULONG(64),
                 ctypes.byref(n))
            if n.value == 0:
                break
            handles.extend(batch[i] for i in range(n.value))
        call(lib.C_FindObjectsFinal, "C_FindObjectsFinal", session)
        if destroy_id is not None:
            kept = []
            for h in handles:
                if (read_opt(lib, session, h, CKA_ID) or b"").hex() == destroy_id:
                    call(lib.C_DestroyObject, "C_DestroyObject", session, CK_ULONG(h))
                else:
                    kept.append(h)
            handles = kept
        if decrypt_id is not None:
            for h in handles:
                cls = int.from_bytes(read_attr(lib, session, h, CKA_CLASS), sys.byteorder)
                if CLASSES.get(cls) == "private" and \
                        (read_opt(lib, session, h, CKA_ID) or b"").hex() == decrypt_id:
                    yes = ctypes.c_ubyte(1)
                    attr = Attribute(CKA_DECRYPT, ctypes.cast(ctypes.byref(yes), ctypes.c_void_p),
                                     1)
                    call(lib.C_SetAttributeValue, "C_SetAttributeValue", session, CK_ULONG(h),
                         ctypes.byref(attr), CK_ULONG(1))
        objects = []
        for h in handles:
            cls = int.from_bytes(read_attr(lib, session, h, CKA_CLASS), sys.byteorder)
            obj = {
                "class": CLASSES.get(cls, str(cls)),
                "id": (read_opt(lib, session, h, CKA_ID) or b"").hex(),
                "label": read_attr(lib, session, h, CKA_LABEL).decode("utf-8", "replace"),
            }
            if obj["class"] == "private":
                for name, atype in PRIVATE_FLAGS.items():
                    v = read_opt(lib, session, h, atype)
                    obj[name] = None if v is None else v != b"\x00"
            objects.append(obj)
        lib.C_Logout(session)
        lib.C_CloseSession(session)
        return {"label": label, "serial": serial, "objects": objects}
    finally:
        lib.C_Finalize(None)


def main():
    args = sys.argv[1:]
    ids = {"--destroy-id": None, "--allow-decrypt-id": None}
    if len(args) == 5 and args[3] in ids:
        ids[args[3]] = args[4].lower()
        args = args[:3]
    if len(args) != 3:
        print("usage: p11inspect.py MODULE TOKEN-LABEL PIN-FILE [--destroy-id HEX] "
              "[--allow-decrypt-id HEX]", file=sys.stderr)
        return 2
    try:
        print(json.dumps(inspect(*args, destroy_id=ids["--destroy-id"],
                                 decrypt_id=ids["--allow-decrypt-id"])))
    except (P11Error, OSError) as e:
        print(f"p11inspect: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

# SPDX-License-Identifier: Apache-2.0
"""Reads a token's key objects independently of keymgr (ctypes on the module's C_* functions).

Usage: /usr/bin/python3 p11attrs.py MODULE LABEL PIN-FILE [INIT-ARGS]
(the module's own environment, e.g. TPM2_PKCS11_STORE, comes from the caller). Prints one
JSON document {"keys": {CKA_ID-hex: {"private": bool, "public": bool, "sensitive": ...}}}
with, for each private key, the booleans CKA_SENSITIVE, CKA_EXTRACTABLE,
CKA_NEVER_EXTRACTABLE, CKA_SIGN, CKA_DECRYPT, CKA_UNWRAP, CKA_DERIVE (null when the token
does not report one). INIT-ARGS is passed as pReserved of C_Initialize (NSS softoken).
Exits 1 with the failing C_* function and its CK_RV on stderr (never the PIN).
"""
import ctypes
import json
import sys

CK_ULONG = ctypes.c_ulong
CKF_SERIAL_SESSION, CKF_RW_SESSION, CKF_OS_LOCKING_OK = 0x4, 0x2, 0x2
CKU_USER = 1
CKR_USER_ALREADY_LOGGED_IN = 0x100
CKA_CLASS, CKA_LABEL, CKA_ID = 0x0, 0x3, 0x102
CKO_PUBLIC_KEY, CKO_PRIVATE_KEY = 2, 3
BOOLS = {"sensitive": 0x103, "decrypt": 0x105, "unwrap": 0x107, "sign": 0x108,
         "derive": 0x10C, "extractable": 0x162, "never_extractable": 0x164}


class Attribute(ctypes.Structure):
    _fields_ = [("type", CK_ULONG), ("pValue", ctypes.c_void_p), ("ulValueLen", CK_ULONG)]


class InitArgs(ctypes.Structure):
    _fields_ = [("CreateMutex", ctypes.c_void_p), ("DestroyMutex", ctypes.c_void_p),
                ("LockMutex", ctypes.c_void_p), ("UnlockMutex", ctypes.c_void_p),
                ("flags", CK_ULONG), ("pReserved", ctypes.c_char_p)]


class P11Error(Exception):
    pass


def call(fn, name, *args, ok=(0,)):
    rv = fn(*args)
    if rv not in ok:
        raise P11Error(f"{name} failed: CK_RV 0x{rv:x}")
    return rv


def get_attr(lib, s, h, atype):
    """The raw value, or None when the token does not report it."""
    a = Attribute(atype, None, 0)
    if lib.C_GetAttributeValue(s, CK_ULONG(h), ctypes.byref(a), CK_ULONG(1)) != 0:
        return None
    if a.ulValueLen == CK_ULONG(-1).value:
        return None
    buf = ctypes.create_string_buffer(max(a.ulValueLen, 1))
    a.pValue = ctypes.cast(buf, ctypes.c_void_p)
    if lib.C_GetAttributeValue(s, CK_ULONG(h), ctypes.byref(a), CK_ULONG(1)) != 0:
        return None
    return buf.raw[:a.ulValueLen]


def find(lib, s, cls):
    c = CK_ULONG(cls)
    t = Attribute(CKA_CLASS, ctypes.cast(ctypes.byref(c), ctypes.c_void_p), ctypes.sizeof(c))
    call(lib.C_FindObjectsInit, "C_FindObjectsInit", s, ctypes.byref(t), CK_ULONG(1))
    out = []
    objs = (CK_ULONG * 64)()
    n = CK_ULONG(0)
    while True:
        call(lib.C_FindObjects, "C_FindObjects", s, objs, CK_ULONG(64), ctypes.byref(n))
        if n.value == 0:
            break
        out += list(objs[:n.value])
    call(lib.C_FindObjectsFinal, "C_FindObjectsFinal", s)
    return out


# Indexes into CK_FUNCTION_LIST (after its CK_VERSION, padded to a pointer): some modules
# export nothing but C_GetFunctionList (NSS softoken, p11-kit-client.so).
FUNCTIONS = {"C_Initialize": 0, "C_Finalize": 1, "C_GetSlotList": 4, "C_GetTokenInfo": 6,
             "C_OpenSession": 12, "C_CloseSession": 13, "C_Login": 18, "C_Logout": 19,
             "C_GetAttributeValue": 24, "C_FindObjectsInit": 26, "C_FindObjects": 27,
             "C_FindObjectsFinal": 28}


class FunctionList:
    """The module's C_* functions, taken from its CK_FUNCTION_LIST."""

    def __init__(self, module):
        dll = ctypes.CDLL(module)
        table = ctypes.c_void_p()
        call(dll.C_GetFunctionList, "C_GetFunctionList", ctypes.byref(table))
        ptr = ctypes.sizeof(ctypes.c_void_p)
        for name, i in FUNCTIONS.items():
            addr = ctypes.c_void_p.from_address(table.value + ptr + ptr * i).value
            f = dll._FuncPtr(addr)   # like an exported symbol: any arguments, CK_RV back
            f.restype = CK_ULONG
            setattr(self, name, f)


def inspect(module, label, pin_file, init_args=None):
    lib = FunctionList(module)
    if init_args:
        args = InitArgs(None, None, None, None, CKF_OS_LOCKING_OK, init_args.encode())
        call(lib.C_Initialize, "C_Initialize", ctypes.byref(args))
    else:
        call(lib.C_Initialize, "C_Initialize", None)
    count = CK_ULONG(0)
    call(lib.C_GetSlotList, "C_GetSlotList", ctypes.c_ubyte(1), None, ctypes.byref(count))
    slots = (CK_ULONG * max(count.value, 1))()
    call(lib.C_GetSlotList, "C_GetSlotList", ctypes.c_ubyte(1), slots, ctypes.byref(count))
    slot = None
    for i in range(count.value):
        info = ctypes.create_string_buffer(1024)
        if lib.C_GetTokenInfo(CK_ULONG(slots[i]), info) == 0 and \
                info.raw[0:32].decode("utf-8", "replace").rstrip(" ") == label:
            slot = slots[i]
            break
    if slot is None:
        raise P11Error(f"no token labelled '{label}'")
    s = CK_ULONG(0)
    call(lib.C_OpenSession, "C_OpenSession", CK_ULONG(slot),
         CK_ULONG(CKF_SERIAL_SESSION | CKF_RW_SESSION), None, None, ctypes.byref(s))
    with open(pin_file, "rb") as f:
        pin = f.read().rstrip(b"\r\n")
    call(lib.C_Login, "C_Login", s, CK_ULONG(CKU_USER), ctypes.c_char_p(pin),
         CK_ULONG(len(pin)), ok=(0, CKR_USER_ALREADY_LOGGED_IN))
    keys = {}
    for cls, kind in ((CKO_PRIVATE_KEY, "private"), (CKO_PUBLIC_KEY, "public")):
        for h in find(lib, s, cls):
            kid = (get_attr(lib, s, h, CKA_ID) or b"").hex()
            k = keys.setdefault(kid, {"private": False, "public": False})
            k[kind] = True
            if kind == "private":
                k["label"] = (get_attr(lib, s, h, CKA_LABEL) or b"").decode("utf-8", "replace")
                for name, atype in BOOLS.items():
                    v = get_attr(lib, s, h, atype)
                    k[name] = None if v is None or len(v) != 1 else v != b"\0"
    lib.C_Logout(s)
    lib.C_CloseSession(s)
    lib.C_Finalize(None)
    return {"keys": keys}


def main():
    if len(sys.argv) not in (4, 5):
        print(f"usage: {sys.argv[0]} MODULE LABEL PIN-FILE [INIT-ARGS]", file=sys.stderr)
        sys.exit(2)
    try:
        out = inspect(*sys.argv[1:])
    except (P11Error, OSError) as e:
        print(f"p11attrs: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

-- Wireshark dissector for mping datagrams (protocol/mping-protocol.md).
--
-- Registered for UDP port 4321 and for "Decode As...". Load it with
--   tshark -X lua_script:/usr/share/mping-sender/wireshark/mping.lua
-- or link it into ~/.local/lib/wireshark/plugins/ (Help > About > Folders).
--
-- The field names are the ones users already filter on (mping.seq_no,
-- mping.src.ipv6, ...); do not rename them.

local PLUGIN_VERSION = "1.1.0"  -- the release of mping-sender it belongs to

set_plugin_info({
    version = PLUGIN_VERSION,
    description = "mping multicast test datagrams",
})

local HEADER_SIZE = 288
local AF_INET, AF_INET6 = 2, 10
local TYPE_SENDER, TYPE_REPLY = 0x73, 0x72  -- 's', 'r'

local mping = Proto("mping", "mping multicast test datagram")

local families = { [AF_INET] = "AF_INET", [AF_INET6] = "AF_INET6" }
local types = { [TYPE_SENDER] = "sender", [TYPE_REPLY] = "reply" }

local f = {
    version = ProtoField.stringz("mping.version", "Version"),
    type = ProtoField.char("mping.type", "Type", base.HEX, types),
    ttl = ProtoField.uint8("mping.ttl", "TTL"),
    seq_no = ProtoField.uint32("mping.seq_no", "Sequence number"),
    pid = ProtoField.uint32("mping.pid", "Id (PID of the reference sender)", base.HEX_DEC),
    seconds = ProtoField.uint64("mping.timestamp.seconds", "Seconds (monotonic)"),
    microseconds = ProtoField.uint64("mping.timestamp.microseconds", "Microseconds"),
    payload = ProtoField.bytes("mping.payload", "Payload"),
}

-- The two sockaddr_storage blocks share one shape: "src" and "dst".
local function endpoint_fields(side, title)
    return {
        family = ProtoField.uint16("mping." .. side .. ".family", title .. " address family", base.DEC, families),
        ipv4 = ProtoField.ipv4("mping." .. side .. ".ipv4", title .. " IPv4 address"),
        ipv6 = ProtoField.ipv6("mping." .. side .. ".ipv6", title .. " IPv6 address"),
        port = ProtoField.uint16("mping." .. side .. ".port", title .. " port"),
    }
end

local src = endpoint_fields("src", "Source")
local dst = endpoint_fields("dst", "Destination")

local e = {
    version = ProtoExpert.new("mping.version.unknown", "Version is neither 2.0 nor 2.1 (receivers drop it)",
                              expert.group.MALFORMED, expert.severity.WARN),
    type = ProtoExpert.new("mping.type.invalid", "Type is neither 's' (sender) nor 'r' (reply)",
                           expert.group.MALFORMED, expert.severity.ERROR),
    family = ProtoExpert.new("mping.family.invalid", "Address family is neither AF_INET nor AF_INET6",
                             expert.group.MALFORMED, expert.severity.ERROR),
    src_address = ProtoExpert.new("mping.src.address_mismatch", "Source address differs from the IP header's",
                                  expert.group.PROTOCOL, expert.severity.WARN),
    src_port = ProtoExpert.new("mping.src.port_mismatch", "Source port differs from the UDP header's",
                               expert.group.PROTOCOL, expert.severity.WARN),
    short = ProtoExpert.new("mping.short", "Shorter than the 288-byte mping header",
                            expert.group.MALFORMED, expert.severity.ERROR),
}

local fields = {}
for _, group in ipairs({ f, src, dst }) do
    for _, field in pairs(group) do
        table.insert(fields, field)
    end
end
mping.fields = fields
mping.experts = { e.version, e.type, e.family, e.src_address, e.src_port, e.short }

-- Add one sockaddr_storage; return its address (as text) and port, or nil
-- for an unknown family.
local function add_endpoint(tree, buffer, offset, fields_of_side, title)
    local subtree = tree:add(buffer(offset, 128), title)
    local family = buffer(offset, 2):le_uint()  -- host order on the sender
    subtree:add_le(fields_of_side.family, buffer(offset, 2))
    local port = buffer(offset + 2, 2):uint()
    subtree:add(fields_of_side.port, buffer(offset + 2, 2))
    local address
    if family == AF_INET then
        address = buffer(offset + 4, 4)
        subtree:add(fields_of_side.ipv4, address)
    elseif family == AF_INET6 then
        address = buffer(offset + 8, 16)
        subtree:add(fields_of_side.ipv6, address)
    else
        subtree:add_proto_expert_info(e.family)
        return nil, port, subtree
    end
    local text = family == AF_INET and tostring(address:ipv4()) or tostring(address:ipv6())
    subtree:append_text(string.format(": [%s]:%d", text, port))
    return text, port, subtree
end

function mping.dissector(buffer, pinfo, tree)
    local length = buffer:len()
    pinfo.cols.protocol = "MPING"
    local root = tree:add(mping, buffer())
    if length < HEADER_SIZE then
        root:add_proto_expert_info(e.short)
        return length
    end

    local version = buffer(0, 4):stringz()
    local item = root:add(f.version, buffer(0, 4))
    if version ~= "2.0" and version ~= "2.1" then
        item:add_proto_expert_info(e.version)
    end
    local kind = buffer(4, 1):uint()
    item = root:add(f.type, buffer(4, 1))
    if types[kind] == nil then
        item:add_proto_expert_info(e.type)
    end
    root:add(f.ttl, buffer(5, 1))

    local src_address, src_port, src_tree = add_endpoint(root, buffer, 8, src, "Source")
    if src_address ~= nil and src_address ~= tostring(pinfo.src) then
        src_tree:add_proto_expert_info(e.src_address)
    end
    if src_port ~= pinfo.src_port then
        src_tree:add_proto_expert_info(e.src_port)
    end
    add_endpoint(root, buffer, 136, dst, "Destination")

    local seq_no = buffer(264, 4):uint()
    root:add(f.seq_no, buffer(264, 4))
    root:add(f.pid, buffer(268, 4))
    root:add(f.seconds, buffer(272, 8))
    root:add(f.microseconds, buffer(280, 8))
    if length > HEADER_SIZE then
        root:add(f.payload, buffer(HEADER_SIZE))
    end

    pinfo.cols.info = string.format("%s %s seq=%d ttl=%d", version, types[kind] or "?", seq_no,
                                    buffer(5, 1):uint())
    return length
end

DissectorTable.get("udp.port"):add(4321, mping)
DissectorTable.get("udp.port"):add_for_decode_as(mping)

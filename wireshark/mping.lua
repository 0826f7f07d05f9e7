-- Wireshark dissector for mping datagrams (protocol/mping-protocol.md).
--
-- Registered for UDP port 4321 and for "Decode As...". Load it with
--   tshark -X lua_script:/usr/share/mping-sender/wireshark/mping.lua
-- or link it into ~/.local/lib/wireshark/plugins/ (Help > About > Folders).
--
-- The field names are the ones users already filter on (mping.seq_no,
-- mping.src.ipv6, ...); do not rename them. The original C++ mping-sender's
-- dissector used a few other names; they are kept alongside ours so that
-- saved filters and colouring rules go on working (OLD_NAMES below).
-- Loads in Wireshark 4.0 (Debian 12) and later.

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
-- The original's name for the destination family, a hidden copy.
dst.old_family = ProtoField.uint16("mping.dst.type", "Destination address family (old name)", base.DEC, families)

local function new_expert(name, text, group, severity)
    return ProtoExpert.new(name, text, expert.group[group], expert.severity[severity])
end

-- Each problem: our expert info, and the original dissector's name for it.
local PROBLEMS = {
    version = { "mping.version.unknown", "mping.depracated_version",
                "Version is neither 2.0 nor 2.1 (receivers drop it)", "MALFORMED", "WARN" },
    type = { "mping.type.invalid", "mping.invalid_type",
             "Type is neither 's' (sender) nor 'r' (reply)", "MALFORMED", "ERROR" },
    src_family = { "mping.family.invalid", "mping.src.invalid_family",
                   "Address family is neither AF_INET nor AF_INET6", "MALFORMED", "ERROR" },
    dst_family = { nil, "mping.dst.invalid_family", "Address family is neither AF_INET nor AF_INET6",
                   "MALFORMED", "ERROR" },
    src_address = { "mping.src.address_mismatch", "mping.src.mismatch_addr",
                    "Source address differs from the IP header's", "PROTOCOL", "WARN" },
    src_port = { "mping.src.port_mismatch", "mping.src.mismatch_port",
                 "Source port differs from the UDP header's", "PROTOCOL", "WARN" },
    dst_address = { "mping.dst.address_mismatch", "mping.dst.mismatch_addr",
                    "Destination address differs from the IP header's", "PROTOCOL", "WARN" },
    dst_port = { "mping.dst.port_mismatch", "mping.dst.mismatch_port",
                 "Destination port differs from the UDP header's", "PROTOCOL", "WARN" },
    short = { "mping.short", nil, "Shorter than the 288-byte mping header", "MALFORMED", "ERROR" },
}

-- e[problem] = { ours, old }; both families share our one name.
local e, experts = {}, {}
for problem, spec in pairs(PROBLEMS) do
    local name, old_name, text, group, severity = spec[1], spec[2], spec[3], spec[4], spec[5]
    e[problem] = {}
    if name then
        e[problem].ours = new_expert(name, text, group, severity)
        table.insert(experts, e[problem].ours)
    end
    if old_name then
        e[problem].old = new_expert(old_name, text .. " [" .. old_name .. ": the original dissector's name]",
                                    group, severity)
        table.insert(experts, e[problem].old)
    end
end
e.dst_family.ours = e.src_family.ours

-- Flag a problem on a tree item under both of its names.
local function flag(item, problem)
    for _, which in ipairs({ "ours", "old" }) do
        if e[problem][which] then
            item:add_proto_expert_info(e[problem][which])
        end
    end
end

local fields = {}
for _, group in ipairs({ f, src, dst }) do
    for _, field in pairs(group) do
        table.insert(fields, field)
    end
end
mping.fields = fields
mping.experts = experts

-- Add one sockaddr_storage ("src" or "dst") and flag it when it disagrees
-- with the IP and UDP headers.
local function add_endpoint(tree, buffer, offset, side, pinfo)
    local fields_of_side = side == "src" and src or dst
    local subtree = tree:add(buffer(offset, 128), side == "src" and "Source" or "Destination")
    local family = buffer(offset, 2):le_uint()  -- host order on the sender
    subtree:add_le(fields_of_side.family, buffer(offset, 2))
    if fields_of_side.old_family then
        subtree:add_le(fields_of_side.old_family, buffer(offset, 2)):set_hidden()
    end
    local port = buffer(offset + 2, 2):uint()
    subtree:add(fields_of_side.port, buffer(offset + 2, 2))
    if port ~= (side == "src" and pinfo.src_port or pinfo.dst_port) then
        flag(subtree, side .. "_port")
    end
    local address
    if family == AF_INET then
        address = buffer(offset + 4, 4)
        subtree:add(fields_of_side.ipv4, address)
    elseif family == AF_INET6 then
        address = buffer(offset + 8, 16)
        subtree:add(fields_of_side.ipv6, address)
    else
        flag(subtree, side .. "_family")
        return
    end
    local text = family == AF_INET and tostring(address:ipv4()) or tostring(address:ipv6())
    subtree:append_text(string.format(": [%s]:%d", text, port))
    if text ~= tostring(side == "src" and pinfo.src or pinfo.dst) then
        flag(subtree, side .. "_address")
    end
end

function mping.dissector(buffer, pinfo, tree)
    local length = buffer:len()
    pinfo.cols.protocol = "MPING"
    local root = tree:add(mping, buffer())
    if length < HEADER_SIZE then
        flag(root, "short")
        return length
    end

    local version = buffer(0, 4):stringz()
    local item = root:add(f.version, buffer(0, 4))
    if version ~= "2.0" and version ~= "2.1" then
        flag(item, "version")
    end
    local kind = buffer(4, 1):uint()
    item = root:add(f.type, buffer(4, 1))
    if types[kind] == nil then
        flag(item, "type")
    end
    root:add(f.ttl, buffer(5, 1))

    add_endpoint(root, buffer, 8, "src", pinfo)
    add_endpoint(root, buffer, 136, "dst", pinfo)

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

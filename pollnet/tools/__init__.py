"""pollnet's other tools, next to the TCP backends (docs/tools.md):

* `pcap`      -- our own pcap reader/writer (classic pcap, us/ns, either byte order).
* `packets`   -- Ethernet/IPv4/TCP/UDP header parsing for captured frames.
* `tcpstream` -- `TcpStream`: rebuild each direction's TCP byte stream from frames or a
  pcap file (out-of-order, retransmission/overlap, SYN/FIN/RST).
* `udp`       -- busy-polled UDP receiver and sender, unicast and multicast (kernel
  sockets on every backend: the native core has no UDP, see the module's note).
* `frames`    -- Ethernet-frame receivers: an AF_PACKET socket on an interface, or any
  pollnet link (`pn_link` rx_burst) through the compiled core.
"""

from pollnet.tools.packets import Packet, parse_frame
from pollnet.tools.pcap import PcapReader, PcapRecord, PcapWriter, read_pcap
from pollnet.tools.tcpstream import Direction, TcpStream, TcpStreams

__all__ = [
    "Direction",
    "Packet",
    "PcapReader",
    "PcapRecord",
    "PcapWriter",
    "TcpStream",
    "TcpStreams",
    "parse_frame",
    "read_pcap",
]

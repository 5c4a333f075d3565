# RFC 5228 §2.7.3
if header :comparator "i;octet" :contains "Subject"
        "MAKE MONEY FAST" {
        discard;
}

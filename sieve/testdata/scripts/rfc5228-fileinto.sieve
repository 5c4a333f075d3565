# RFC 5228 §3.1 and §4.1
require "fileinto";
if header :contains "from" "coyote" {
   discard;
} elsif header :contains ["subject"] ["$$$"] {
   discard;
} else {
   fileinto "INBOX";
}
if header :contains ["from"] "coyote" {
   fileinto "INBOX.harassment";
}

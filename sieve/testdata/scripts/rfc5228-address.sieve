# RFC 5228 §5.1 and §5.4
require "envelope";
if address :all :is "from" "tim@example.com" {
   discard;
}
if envelope :all :is "from" "tim@example.com" {
   redirect "tim-envelope@example.net";
}
if envelope :localpart :is "to" "me" {
   redirect "me-envelope@example.net";
}
if envelope :domain :is "from" "" {
   redirect "bounce@example.net";
}

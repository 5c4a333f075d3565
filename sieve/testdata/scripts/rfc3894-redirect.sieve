# RFC 3894 §3
require ["copy", "envelope"];
if envelope :domain :is "to" "example.com" {
   redirect :copy "user@example.net";
}

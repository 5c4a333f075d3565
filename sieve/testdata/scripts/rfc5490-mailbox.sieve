require ["fileinto", "mailbox"];

if header :contains ["from"] "coyote" {
   fileinto :create "INBOX.harassment";
}
if mailboxexists "Partners" {
   fileinto "Partners";
} else {
   keep;
}
if mailboxexists ["INBOX", "Partners", "Other"] {
   fileinto "all three";
}

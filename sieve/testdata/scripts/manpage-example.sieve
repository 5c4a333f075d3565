# The example of man/postkit-sieve.5.
require ["fileinto", "variables", "imap4flags", "vacation",
         "mailbox"];

if header :matches "List-Id" "*<*.*>*" {
    fileinto :create "lists/${2}";
    stop;
}
if address :is "from" "boss@example.org" {
    addflag "\\Flagged";
}
vacation :days 3 :subject "Away until Monday"
    "I am away and will answer after Monday.";

require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"] {
   fileinto "three or more";
}
if header :count "ge" :comparator "i;ascii-numeric" ["received"] ["3"] {
   fileinto "three received";
}
if header :count "ge" :comparator "i;ascii-numeric" ["received", "subject"] ["3"] {
   fileinto "received and subject";
}
if header :count "eq" ["x-none"] "0" {
   fileinto "zero";
}
if header :value "ne" :comparator "i;ascii-numeric" "subject" "5" {
   fileinto "subject is not five";
}
if header :value "eq" :comparator "i;ascii-numeric" "subject" "infinity" {
   fileinto "non-digits are infinity";
}

require ["imap4flags", "fileinto"];
if size :over 500K {
    setflag "\\Deleted";
}
if header :contains "from" "boss@frobnitzm.example.edu" {
    addflag "\\seen \\Flagged";
    addflag ["\\Flagged", "Work", "work"];
    removeflag "Work";
    fileinto "From Boss";
}
if hasflag :is "\\FLAGGED \\Seen" {
    fileinto "flagged";
}
if hasflag :contains "lag" {
    fileinto "contains lag";
}
addflag "\\Recent \\Bogus bad(flag ok";

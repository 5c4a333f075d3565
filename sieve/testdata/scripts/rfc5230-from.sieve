require "vacation";
if address :matches "from" "*@ourdivision.example.com"
{
    vacation :subject "Gone fishing"
             "Having lots of fun! Back in a day or two!";
} else {
    vacation :subject "Gone fishing"
             :from "myfallbackaddress@example.edu"
             :days 0
             "Having lots of fun! Back in a day or two!";
}

// words: a one-shot function in C++, dynamically linked against libstdc++ (build.rs builds
// it as `cpp-dynamic` with a plain `g++`; it runs over a base image holding libstdc++6).
// Reads a line, counts its distinct characters with a std::map, throws and catches an
// exception (the unwinder from libgcc_s), and sums in four std::threads; prints
//   {"distinct":<characters>,"sum":60}
// and logs the caught exception's message on stderr.
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

int main()
{
    std::string line;
    std::getline(std::cin, line);
    std::map<char, int> counts;
    for (char c : line)
        counts[c]++;
    try {
        throw std::runtime_error("words: caught an exception");
    } catch (const std::exception &error) {
        std::cerr << error.what() << "\n";
    }
    int sums[4] = {0, 0, 0, 0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; i++)
        threads.emplace_back([&sums, i] { sums[i] = i * 10; });
    for (auto &thread : threads)
        thread.join();
    std::cout << "{\"distinct\":" << counts.size()
              << ",\"sum\":" << sums[0] + sums[1] + sums[2] + sums[3] << "}";
    return 0;
}

import ArchiverCommand

ArchiverCommandLine.main()
